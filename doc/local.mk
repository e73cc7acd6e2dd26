# doc/: design notes
EXTRA_DIST += doc/review.md
