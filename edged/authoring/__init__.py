"""Tools for filter authors: scaffold a project, run a filter over JSON lines, golden-test it,
inspect a module the way a node would take it."""
