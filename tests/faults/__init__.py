"""The fault suite (issue 7): real processes under a steady load, one fault at a time and
then all together, and after each an audit of every message a client saw accepted.
`python -m ops.drills.chaos` runs the same scenarios and prints the fault table."""
