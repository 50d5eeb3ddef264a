#!/bin/sh
# Installs the pgfiles binary.
#
#   curl -fsSL https://github.com/pgfiles/pgfiles/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --version 0.1.0 --dir ~/bin
#
# Options (or the environment variables beside them):
#   --version V    PGFILES_INSTALL_VERSION   a release such as 0.1.0 (default: the latest)
#   --dir D        PGFILES_INSTALL_DIR       where to put pgfiles (default: /usr/local/bin
#                                            when writable, else ~/.local/bin)
#   --base-url U   PGFILES_INSTALL_BASE_URL  where releases are downloaded from (default below);
#                                            U/download/v<V>/<file> and U/latest/download/<file>
#
# It downloads pgfiles-<version>-<os>-<arch>.tar.gz and SHA256SUMS, refuses an
# archive whose checksum does not match, and replaces an installed binary only
# once the new one is verified and complete (a rename within the directory).
# Running it again is harmless. Needs: uname, tar, gzip, curl or wget, and
# sha256sum or shasum or openssl.
set -eu

DEFAULT_BASE_URL="https://github.com/pgfiles/pgfiles/releases"

say() { printf 'pgfiles install: %s\n' "$*"; }
fail() {
	printf 'pgfiles install: %s\n' "$*" >&2
	exit 1
}

# Everything runs from main, called on the last line: under `curl | sh` the
# shell runs what has arrived so far, and a download cut short must not run
# half an installer (it would define main and stop).
main() {
version="${PGFILES_INSTALL_VERSION:-}"
dir="${PGFILES_INSTALL_DIR:-}"
base_url="${PGFILES_INSTALL_BASE_URL:-$DEFAULT_BASE_URL}"
while [ $# -gt 0 ]; do
	case "$1" in
	--version) [ $# -ge 2 ] || fail "--version needs a value, e.g. --version 0.1.0"; version="$2"; shift 2 ;;
	--version=*) version="${1#*=}"; shift ;;
	--dir) [ $# -ge 2 ] || fail "--dir needs a directory"; dir="$2"; shift 2 ;;
	--dir=*) dir="${1#*=}"; shift ;;
	--base-url) [ $# -ge 2 ] || fail "--base-url needs a URL"; base_url="$2"; shift 2 ;;
	--base-url=*) base_url="${1#*=}"; shift ;;
	-h | --help)
		echo "usage: install.sh [--version V] [--dir D] [--base-url U]"
		echo "  (or PGFILES_INSTALL_VERSION, PGFILES_INSTALL_DIR, PGFILES_INSTALL_BASE_URL)"
		exit 0
		;;
	*) fail "unknown option $1 (the options are --version V, --dir D, --base-url U)" ;;
	esac
done
base_url="${base_url%/}"
version="${version#v}"
[ "$version" != latest ] || version=""

# --- which build ------------------------------------------------------------
os_name=$(uname -s)
case "$os_name" in
Linux) os=linux ;;
Darwin) os=darwin ;;
*) fail "pgfiles is built for Linux and macOS only; this machine runs $os_name." ;;
esac
machine=$(uname -m)
case "$machine" in
x86_64 | amd64) arch=x64 ;;
aarch64 | arm64) arch=arm64 ;;
*) fail "pgfiles is built for x86_64 and arm64 only; this machine is $machine." ;;
esac
# A shell under Rosetta reports x86_64 on an Apple silicon Mac: take the native build.
if [ "$os" = darwin ] && [ "$arch" = x64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
	arch=arm64
fi
if [ "$os" = linux ] && { ls /lib/ld-musl-* >/dev/null 2>&1 || ls /lib64/ld-musl-* >/dev/null 2>&1; } &&
	! { ls /lib/ld-linux-* >/dev/null 2>&1 || ls /lib64/ld-linux-* >/dev/null 2>&1; }; then
	fail "this Linux uses musl libc (Alpine?); pgfiles builds need glibc. On Alpine: apk add gcompat, then run this again."
fi

# --- tools ------------------------------------------------------------------
if command -v curl >/dev/null 2>&1; then
	fetch() { curl -fsL --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
	fetch() { wget -q -O "$2" "$1"; }
else
	fail "neither curl nor wget is installed; install one of them and run this again."
fi
if command -v sha256sum >/dev/null 2>&1; then
	sha256_of() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
	sha256_of() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
elif command -v openssl >/dev/null 2>&1; then
	sha256_of() { openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1; }
else
	fail "no sha256 tool (sha256sum, shasum or openssl) is installed, so the download cannot be verified."
fi
command -v tar >/dev/null 2>&1 || fail "tar is not installed."

tmp=""
staged=""
cleanup() {
	[ -z "$tmp" ] || rm -rf "$tmp"
	[ -z "$staged" ] || rm -f "$staged"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tmp=$(mktemp -d 2>/dev/null || mktemp -d -t pgfiles) || fail "could not make a temporary directory."

# --- download and verify ------------------------------------------------------
if [ -z "$version" ]; then
	fetch "$base_url/latest/download/VERSION" "$tmp/VERSION" ||
		fail "could not find the latest version at $base_url/latest/download/VERSION."
	version=$(tr -d ' \r\n' <"$tmp/VERSION")
fi
case "$version" in
[0-9]*) ;;
*) fail "\"$version\" is not a version (expected e.g. 0.1.0)." ;;
esac
case "$version" in
*[!0-9A-Za-z.+-]*) fail "\"$version\" is not a version (expected e.g. 0.1.0)." ;;
esac

archive="pgfiles-$version-$os-$arch.tar.gz"
url="$base_url/download/v$version"
say "downloading $archive from $url"
fetch "$url/SHA256SUMS" "$tmp/SHA256SUMS" ||
	fail "could not download $url/SHA256SUMS (is $version a released version?)."
fetch "$url/$archive" "$tmp/$archive" || fail "could not download $url/$archive."

expected=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS")
[ -n "$expected" ] || fail "SHA256SUMS of $version has no line for $archive; nothing was installed."
actual=$(sha256_of "$tmp/$archive")
if [ "$actual" != "$expected" ]; then
	fail "checksum mismatch for $archive: SHA256SUMS says $expected, the download is $actual. The download is damaged or was tampered with; nothing was installed."
fi

mkdir "$tmp/x"
tar -xzf "$tmp/$archive" -C "$tmp/x" || fail "could not unpack $archive."
new="$tmp/x/pgfiles-$version-$os-$arch/pgfiles"
[ -f "$new" ] || fail "$archive has no pgfiles-$version-$os-$arch/pgfiles in it; nothing was installed."

# --- install ------------------------------------------------------------------
if [ -z "$dir" ]; then
	if [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
		dir=/usr/local/bin
	else
		[ -n "${HOME:-}" ] || fail "HOME is not set and /usr/local/bin is not writable; choose a directory with --dir."
		dir="$HOME/.local/bin"
	fi
fi
mkdir -p "$dir" 2>/dev/null || fail "cannot create $dir; choose another directory with --dir."
[ -w "$dir" ] || fail "$dir is not writable; run with sudo or choose a directory with --dir."
dest="$dir/pgfiles"

if [ -f "$dest" ] && cmp -s "$new" "$dest"; then
	say "pgfiles $version is already installed at $dest"
else
	# Copy next to the destination, then rename: a running pgfiles keeps its
	# old file, and an interrupted install never leaves half a binary.
	staged="$dir/.pgfiles.install.$$"
	cp "$new" "$staged" || fail "could not write $staged."
	chmod 755 "$staged"
	if [ "$os" = darwin ]; then
		xattr -d com.apple.quarantine "$staged" 2>/dev/null || true
	fi
	# It must run here before it replaces anything (stdin: under curl | sh it is this script).
	if ! reported=$("$staged" --version </dev/null 2>&1); then
		fail "the downloaded pgfiles does not run on this machine, so nothing was installed: $reported"
	fi
	mv -f "$staged" "$dest" || fail "could not move the new binary to $dest."
	staged=""
	say "installed pgfiles $version to $dest"
fi
reported=$("$dest" --version </dev/null 2>&1) || fail "$dest does not run on this machine: $reported"
say "$dest --version: $reported"

case ":${PATH:-}:" in
*":$dir:"* | *":$dir/:"*) ;;
*)
	home="${HOME:-}"
	[ -n "$home" ] || home="~"
	case "${SHELL:-}" in
	*/zsh) rc="$home/.zshrc" ;;
	*/bash) if [ "$os" = darwin ]; then rc="$home/.bash_profile"; else rc="$home/.bashrc"; fi ;;
	*) rc="$home/.profile" ;;
	esac
	say "$dir is not on your PATH. Add it with:"
	say "  echo 'export PATH=\"$dir:\$PATH\"' >> \"$rc\" && . \"$rc\""
	;;
esac

# --- what a mount needs here --------------------------------------------------
if [ "$os" = linux ]; then
	if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo "; fi
	if command -v apt-get >/dev/null 2>&1; then pkg="${sudo}apt-get update && ${sudo}apt-get install -y fuse3"
	elif command -v dnf >/dev/null 2>&1; then pkg="${sudo}dnf install -y fuse3"
	elif command -v yum >/dev/null 2>&1; then pkg="${sudo}yum install -y fuse3"
	elif command -v apk >/dev/null 2>&1; then pkg="${sudo}apk add fuse3"
	elif command -v pacman >/dev/null 2>&1; then pkg="${sudo}pacman -S --noconfirm fuse3"
	elif command -v zypper >/dev/null 2>&1; then pkg="${sudo}zypper install -y fuse3"
	else pkg="install your distribution's fuse3 package"
	fi
	if [ ! -e /dev/fuse ]; then
		say "warning: /dev/fuse is missing, so 'pgfiles mount' cannot work yet. Fix:"
		say "  on a machine or VM:   ${sudo}modprobe fuse"
		say "  in a Docker container: start it with --device /dev/fuse --cap-add SYS_ADMIN"
	elif [ "$(id -u)" -ne 0 ]; then
		if ! command -v fusermount3 >/dev/null 2>&1; then
			say "warning: fusermount3 is missing, and a non-root mount needs it. Fix:"
			say "  $pkg"
		fi
		if [ ! -r /dev/fuse ] || [ ! -w /dev/fuse ]; then
			say "warning: /dev/fuse is not readable and writable by you, so 'pgfiles mount' will be refused. Fix:"
			say "  ${sudo}chmod 0666 /dev/fuse"
		fi
	elif ! command -v mount >/dev/null 2>&1; then
		say "warning: the mount command is missing, and a mount as root needs it. Fix: install util-linux (Debian and Ubuntu: the mount package)."
	fi
fi
say "next: export PGFILES_DSN=postgres://user:password@host:5432/db; pgfiles init; pgfiles mount DIR"
}

main "$@"
