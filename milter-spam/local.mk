# milter-spam/: (to come)
