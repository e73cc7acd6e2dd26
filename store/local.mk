# store/: (to come)
