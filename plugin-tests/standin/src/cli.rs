//! Renders results as `lightning-cli` prints them (cli/lightning-cli.c): JSON indented by three
//! spaces, or `-H` human mode.
