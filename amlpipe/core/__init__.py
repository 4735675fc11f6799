"""amlpipe.core: workspace, datastores, datasets, environments, compute and run configuration."""
