# doc/: (to come)
