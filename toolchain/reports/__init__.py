"""Reports: plots (PNG) and tables written next to a run's artefacts."""
