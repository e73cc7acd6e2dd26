# tests/: (to come)
