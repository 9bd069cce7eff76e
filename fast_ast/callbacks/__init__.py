"""Lightning callbacks of the training recipes."""
