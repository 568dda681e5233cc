"""theta_xr: a theta backend package (plugs into theta_ecs through entry points)."""
