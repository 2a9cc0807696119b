#!/bin/sh
# Generates the pa-paging plugin's announcements: raw G.711 µ-law, 8 kHz,
# mono (`<name>.ul`), spoken by espeak-ng and converted by sox. The plugin
# embeds them with include_bytes!; `cargo xtask` runs this script before it
# builds the plugins whenever an output is missing or older than the script.
#
#   sh make.sh            write every message next to this script
#   sh make.sh --outputs  list the files it writes, one a line (for xtask)
#
# Needs espeak-ng and sox (Debian packages espeak-ng, sox). The outputs are
# committed, so a plain `cargo build` of the plugin works without them and
# every build embeds the same audio; edit a message here and rerun.
set -eu

# name|text. Each directive also gets drill-<name>, prefixed "This is a drill."
MESSAGES='lockdown|Lockdown. Locks, lights, out of sight.
secure|Secure. Get inside. Lock outside doors.
hold|Hold in your room or area. Clear the halls.
evacuate|Evacuate. Go to your evacuation location.
shelter|Shelter. Stay in place.
all-clear|All clear. Resume normal activities.
cancel|Cancel. The previous alert was a false alarm.'

names() {
    printf '%s\n' "$MESSAGES" | while IFS='|' read -r name _; do
        echo "$name.ul"
        echo "drill-$name.ul"
    done
}

if [ "${1:-}" = "--outputs" ]; then
    names
    exit 0
fi

cd "$(dirname "$0")"
command -v espeak-ng >/dev/null || { echo "make.sh: espeak-ng is not installed (Debian package espeak-ng)" >&2; exit 1; }
command -v sox >/dev/null || { echo "make.sh: sox is not installed (Debian package sox)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# speak NAME TEXT: a steady, slightly slow US voice (announcements must be
# understood in a noisy hall), resampled to 8 kHz µ-law, band-limited to the
# telephone band and normalised to -3 dBFS; -R seeds the dither with a fixed
# number, so the same text always gives the same bytes.
speak() {
    espeak-ng -v en-us -s 150 -w "$work/$1.wav" "$2"
    sox -R "$work/$1.wav" -r 8000 -c 1 -e u-law -t raw "$work/$1.ul" highpass 300 lowpass 3400 norm -3
    mv "$work/$1.ul" "$1.ul"
}

printf '%s\n' "$MESSAGES" | while IFS='|' read -r name text; do
    speak "$name" "$text"
    speak "drill-$name" "This is a drill. $text"
done
echo "make.sh: wrote $(names | wc -l) messages in $(pwd)"
