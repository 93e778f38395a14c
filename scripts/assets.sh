#!/usr/bin/env bash
# Install the console's front-end assets from npm (assets/package-lock.json) and copy the files
# the pages load into src/tuan/entrypoints/console/static/vendor/ (not committed).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/tuan/entrypoints/console/static/vendor"
lock="$here/assets/package-lock.json"
stamp="$dest/.installed"
if [ -f "$stamp" ] && [ "$stamp" -nt "$lock" ]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "assets: error: npm is not installed (apt-get install npm)" >&2; exit 1; }
echo "assets: npm ci (assets/package-lock.json)"
npm ci --prefix "$here/assets" --no-audit --no-fund --loglevel=error
nm="$here/assets/node_modules"
mkdir -p "$dest"
cp "$nm/htmx.org/dist/htmx.min.js" "$dest/htmx.min.js"
cp "$nm/alpinejs/dist/cdn.min.js" "$dest/alpine.min.js"
cp "$nm/echarts/dist/echarts.min.js" "$dest/echarts.min.js"
cp "$nm/axe-core/axe.min.js" "$dest/axe.min.js"
touch "$stamp"
echo "assets: copied into ${dest#"$here"/}"
