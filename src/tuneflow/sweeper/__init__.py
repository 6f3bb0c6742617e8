"""The sweeper behind the Hydra plugin: plan, open, ask under the lock, launch, tell, summarise; the
in-process launcher and the job configs it copies instead of composing."""
