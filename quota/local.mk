# quota/: (to come)
