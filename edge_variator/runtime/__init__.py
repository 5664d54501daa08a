"""What an app embeds: the battery/thermal policy and the early-exit runner over a bundle."""
