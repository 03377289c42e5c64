"""One build: its target, planning step, jobs and their runner, solves, post-steps."""
