"""A dataset plugin for transferlab's tests: `stripes` registers itself through the entry point;
`loaders.checkers` is named by import path in a data preset."""
