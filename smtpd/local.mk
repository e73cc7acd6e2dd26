# smtpd/: (to come)
