//! The parkflow binary's wiring: configuration and one function per CLI command.
