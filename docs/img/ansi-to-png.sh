#!/usr/bin/env bash
# Render docs/img/console.ansi (a tmux capture with colours, made by make-screenshots.sh) to
# docs/img/console.png with headless Chromium: the README's picture of the terminal console.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
python3 - "$work/console.html" <<'PY'
import html, re, sys
src = open("console.ansi", encoding="utf-8", errors="replace").read()
colors = {1: "#e05252", 2: "#4fb35a", 3: "#d7a932", 4: "#5a8fe0", 5: "#c678dd", 6: "#56b6c2", 7: "#dddddd"}
st = {"fg": None, "bold": False, "dim": False, "rev": False, "ul": False}
def css():
    fg, bg = st["fg"] or "#d0d0d0", "#1b1d23"
    if st["rev"]:
        fg, bg = bg, fg
    out = f"color:{fg};" + (f"background:{bg};" if st["rev"] else "")
    out += "font-weight:bold;" if st["bold"] else ""
    out += "opacity:0.6;" if st["dim"] else ""
    out += "text-decoration:underline;" if st["ul"] else ""
    return out
parts, pos = [], 0
for m in re.finditer(r"\x1b\[([0-9;]*)m", src):
    if src[pos:m.start()]:
        parts.append(f'<span style="{css()}">{html.escape(src[pos:m.start()])}</span>')
    pos = m.end()
    codes = [int(c) for c in m.group(1).split(";") if c] or [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0: st.update(fg=None, bold=False, dim=False, rev=False, ul=False)
        elif c == 1: st["bold"] = True
        elif c == 2: st["dim"] = True
        elif c == 4: st["ul"] = True
        elif c == 7: st["rev"] = True
        elif c == 39: st["fg"] = None
        elif c == 38 and i + 2 < len(codes) and codes[i + 1] == 5:
            st["fg"] = colors.get(codes[i + 2], "#d0d0d0"); i += 2
        elif 30 <= c <= 37: st["fg"] = colors.get(c - 30)
        i += 1
parts.append(f'<span style="{css()}">{html.escape(src[pos:])}</span>')
open(sys.argv[1], "w").write(
    '<!doctype html><meta charset="utf-8"><style>body{margin:0;background:#1b1d23}'
    'pre{margin:0;padding:12px;font:13px/1.35 "DejaVu Sans Mono",monospace;color:#d0d0d0}</style>'
    f"<pre>{''.join(parts)}</pre>")
PY
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --window-size=1280,700 \
  --screenshot="$PWD/console.png" "file://$work/console.html" 2>/dev/null
rm -rf "$work"
