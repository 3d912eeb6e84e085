# scripts/env.sh — set up the cgo environment that builds gotch v0.9.1 (and
# clozeloop's own cgo package torchrt/) against the libtorch on this machine.
#
# Source it from bash, whatever the current directory:
#
#	source scripts/env.sh && go test ./...
#
# Detection:
#   - $LIBTORCH set: an official libtorch zip layout ($LIBTORCH/include,
#     $LIBTORCH/lib), CPU or CUDA; the library folder is added as rpath and to
#     LD_LIBRARY_PATH.
#   - otherwise Debian's libtorch-dev: /usr/include and /usr/lib/<multiarch>.
#   - libtorch < 2.1 (Debian 12 has 1.13): deploy/libtorch/compat.h is
#     force-included into every C++ file, with -DCLOZELOOP_COMPAT=<hash of the
#     header> so that Go's build cache rebuilds gotch when the header changes.
#     The header is included from a copy at $CACHE/compat/<hash>/compat.h, a
#     path that does not depend on where the repository is cloned: the cgo
#     flags are part of Go's cache key, so every clone of the same header
#     reuses the one gotch build (4-5 minutes on 2 cores) instead of
#     rebuilding it. Edit deploy/libtorch/compat.h, never the copy.
#   - no CUDA build of libtorch (no libtorch_cuda in the library folder): empty
#     stub libraries for the CUDA names gotch always links are written by
#     deploy/libtorch/mkstubs.sh into $CLOZELOOP_CUDA_STUBS (default
#     $CACHE/cuda-stubs) and linked with -Wl,--as-needed, so the binaries need
#     no CUDA library.
#   $CACHE is $CLOZELOOP_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/clozeloop/build
#   when that can be created, else <repo>/.cache.
#
# Exports CGO_ENABLED, CGO_CPPFLAGS (with -DCLOZELOOP_CGO_ENV=1, which torchrt/
# checks), CGO_CXXFLAGS, CGO_LDFLAGS, LD_LIBRARY_PATH (only with $LIBTORCH),
# and for diagnostics CLOZELOOP_LIBTORCH_VERSION, CLOZELOOP_LIBTORCH_DIR
# (library folder), CLOZELOOP_LIBTORCH_INCLUDE, CLOZELOOP_LIBTORCH_COMPAT
# (header path or empty) and CLOZELOOP_CUDA_STUBS (stub folder or empty).
# The CGO_* variables are replaced, not appended to, so sourcing twice is safe.
# CLOZELOOP_ENV_VERBOSE=1 prints a one-line summary to stderr.
#
# On error it prints why and returns 1; it never exits the calling shell.

_clozeloop_env() {
	local root src
	src=${BASH_SOURCE[0]:-}
	if [ -z "$src" ]; then
		echo "scripts/env.sh: source it from bash (BASH_SOURCE is empty)" >&2
		return 1
	fi
	root=$(cd "$(dirname "$src")/.." && pwd) || return 1

	local inc lib prefix system=0
	if [ -n "${LIBTORCH:-}" ]; then
		prefix=${LIBTORCH%/}
		inc=$prefix/include
		lib=$prefix/lib
	else
		local multiarch=""
		if command -v dpkg-architecture >/dev/null 2>&1; then
			multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null) || multiarch=""
		fi
		if [ -z "$multiarch" ] && command -v gcc >/dev/null 2>&1; then
			multiarch=$(gcc -print-multiarch 2>/dev/null) || multiarch=""
		fi
		prefix=/usr
		inc=/usr/include
		lib=/usr/lib${multiarch:+/$multiarch}
		system=1
	fi

	local version_h=$inc/torch/csrc/api/include/torch/version.h
	if [ ! -f "$version_h" ] || { [ ! -e "$lib/libtorch_cpu.so" ] && [ ! -e "$lib/libtorch.so" ]; }; then
		if [ -n "${LIBTORCH:-}" ]; then
			echo "scripts/env.sh: LIBTORCH=$LIBTORCH is not a libtorch folder (need $version_h and $lib/libtorch_cpu.so); install libtorch-dev (Debian 12) or set LIBTORCH=/path/to/libtorch; see README" >&2
		else
			echo "scripts/env.sh: no libtorch found (looked for $version_h and $lib/libtorch_cpu.so): install libtorch-dev (Debian 12) or set LIBTORCH=/path/to/libtorch; see README" >&2
		fi
		return 1
	fi

	local major minor patch
	major=$(sed -n 's/^#define TORCH_VERSION_MAJOR \([0-9][0-9]*\).*/\1/p' "$version_h")
	minor=$(sed -n 's/^#define TORCH_VERSION_MINOR \([0-9][0-9]*\).*/\1/p' "$version_h")
	patch=$(sed -n 's/^#define TORCH_VERSION_PATCH \([0-9][0-9]*\).*/\1/p' "$version_h")
	if [ -z "$major" ] || [ -z "$minor" ]; then
		echo "scripts/env.sh: cannot read TORCH_VERSION_MAJOR/MINOR from $version_h" >&2
		return 1
	fi
	local version=$major.$minor.${patch:-0}

	local cxxflags="-O2 -g -I$inc/torch/csrc/api/include"
	if [ "$system" -eq 0 ]; then
		cxxflags="$cxxflags -I$inc"
	fi

	local cache=${CLOZELOOP_CACHE:-}
	if [ -z "$cache" ]; then
		local home_cache=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
		if [ -n "$home_cache" ] && mkdir -p "$home_cache/clozeloop/build" 2>/dev/null && [ -w "$home_cache/clozeloop/build" ]; then
			cache=$home_cache/clozeloop/build
		else
			cache=$root/.cache
		fi
	fi

	local compat=""
	if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 1 ]; }; then
		local src=$root/deploy/libtorch/compat.h
		if [ ! -f "$src" ]; then
			echo "scripts/env.sh: libtorch $version needs $src, which is missing" >&2
			return 1
		fi
		local hash
		hash=$(sha256sum "$src" | cut -c1-16) || return 1
		compat=$cache/compat/$hash/compat.h
		if ! cmp -s "$src" "$compat" 2>/dev/null; then
			# Copy next to the target and rename, so a concurrent build
			# never includes a half-written header.
			if ! mkdir -p "$cache/compat/$hash" || ! cp "$src" "$compat.tmp.$$" || ! mv -f "$compat.tmp.$$" "$compat"; then
				rm -f "$compat.tmp.$$"
				echo "scripts/env.sh: could not copy $src to $compat (set CLOZELOOP_CACHE to a writable folder)" >&2
				return 1
			fi
		fi
		cxxflags="$cxxflags -include $compat -DCLOZELOOP_COMPAT=$hash"
	fi

	local ldflags="-O2 -g -L$lib"
	if [ "$system" -eq 0 ]; then
		ldflags="$ldflags -Wl,-rpath,$lib"
	fi

	local stubs=""
	if [ ! -e "$lib/libtorch_cuda.so" ]; then
		stubs=${CLOZELOOP_CUDA_STUBS:-$cache/cuda-stubs}
		local name missing=0
		for name in cuda cudart cublas cudnn caffe2_nvrtc nvrtc-builtins nvrtc nvToolsExt c10_cuda torch_cuda; do
			if [ ! -e "$stubs/lib$name.so" ]; then
				missing=1
			fi
		done
		if [ "$missing" -eq 1 ]; then
			if ! bash "$root/deploy/libtorch/mkstubs.sh" "$stubs"; then
				echo "scripts/env.sh: could not write CUDA stub libraries into $stubs" >&2
				return 1
			fi
		fi
		ldflags="$ldflags -Wl,--as-needed -L$stubs"
	elif [ ! -e "$lib/libcudart.so" ] && [ ! -e /usr/local/cuda/lib64/libcudart.so ] &&
		! { command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libcudart\.so '; }; then
		echo "scripts/env.sh: warning: $lib has libtorch_cuda.so but no libcudart.so was found (gotch links -lcudart; install the CUDA toolkit in /usr/local/cuda)" >&2
	fi

	export CGO_ENABLED=1
	export CGO_CPPFLAGS="-DCLOZELOOP_CGO_ENV=1"
	export CGO_CXXFLAGS="$cxxflags"
	export CGO_LDFLAGS="$ldflags"
	if [ "$system" -eq 0 ]; then
		case ":${LD_LIBRARY_PATH:-}:" in
		*":$lib:"*) ;;
		*) export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
		esac
	fi
	export CLOZELOOP_LIBTORCH_VERSION="$version"
	export CLOZELOOP_LIBTORCH_DIR="$lib"
	export CLOZELOOP_LIBTORCH_INCLUDE="$inc"
	export CLOZELOOP_LIBTORCH_COMPAT="$compat"
	export CLOZELOOP_CUDA_STUBS="$stubs"

	if [ "${CLOZELOOP_ENV_VERBOSE:-}" = "1" ]; then
		echo "clozeloop env: libtorch $version in $prefix (lib $lib), compat ${compat:-none}, CUDA ${stubs:+stubbed in $stubs}$([ -z "$stubs" ] && echo real)" >&2
	fi
	return 0
}

_clozeloop_env
_clozeloop_env_rc=$?
unset -f _clozeloop_env
if [ "$_clozeloop_env_rc" -ne 0 ]; then
	unset _clozeloop_env_rc
	# Sourced: return to the caller. Run directly: exit this script only.
	return 1 2>/dev/null || exit 1
fi
unset _clozeloop_env_rc
