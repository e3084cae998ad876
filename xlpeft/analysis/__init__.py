"""Analysis of results: URIEL distances, statistics over seeds and languages, plots, the report."""
