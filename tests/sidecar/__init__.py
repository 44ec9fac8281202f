"""The HTTP sidecar and the SQL core under it: endpoints, sandbox, deadlines, formats, fuzzing."""
