"""Meta-training of velo's learned optimizer by evolution strategies over the task population."""
