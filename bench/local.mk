# bench/: (to come)
