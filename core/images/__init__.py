"""Reading images: finding them (names, paths, versions), reading them safely (confined paths,
loop devices, os-release, unit files), listing and managing them in the search path."""
