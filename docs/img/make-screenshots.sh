#!/usr/bin/env bash
# Regenerate the console captures the README shows: runs the `console_screenshots` integration test
# (authtap, the provider emulator and `authtap console` in a 160x45 tmux pane; needs tmux), which
# writes console.txt (plain text), console.ansi (with colours: `cat` it in a terminal) and
# console-help.txt (the `?` overlay) here.
set -euo pipefail
cd "$(dirname "$0")/../.."
AUTHTAP_SCREENSHOTS="$PWD/docs/img" cargo test -p authtap --test it console_screenshots -- --exact console::console_screenshots
