# imapd/: (to come)
