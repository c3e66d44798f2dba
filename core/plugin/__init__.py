"""The plugin layer: hook specifications, the spec objects hooks return, the registry that
loads plugins (built-in ones and the ``portable`` entry-point group), and the one place hooks are
called."""
