"""Looking at what the networks do: run report, backbone export, artifact spotter."""
