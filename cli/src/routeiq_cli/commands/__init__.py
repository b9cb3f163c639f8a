"""The `routeiq` commands that ``__main__`` registers, one module per command or group."""
