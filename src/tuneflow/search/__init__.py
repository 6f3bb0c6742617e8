"""What to try next: the search space in Hydra's sweep syntax, the samplers, zooming in on an earlier
study, and the failure-aware view that teaches a sampler where trials fail."""
