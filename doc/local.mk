# doc/: design notes
