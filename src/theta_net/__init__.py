"""theta_net: a theta backend package (plugs into theta_ecs through entry points)."""
