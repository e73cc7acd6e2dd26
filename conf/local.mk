# conf/: (to come)
