"""tuneflow's config search path: the project's own ``conf/`` (exported best configs: ``+best=NAME``)."""
