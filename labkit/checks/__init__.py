"""One module per lab holding its exercise checks (loaded by `labkit.exercises.load_all`)."""
