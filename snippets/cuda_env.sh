# Point this shell at one CUDA toolkit: nvcc, its headers and libraries.
#   source cuda_env.sh /usr/local/cuda-12.6
#   or: CUDA_ROOT=/usr/local/cuda-12.6 source cuda_env.sh
# Needed to compile CUDA code (nvcc, torch C++/CUDA extensions). It does NOT change the
# CUDA that a pip-installed torch uses: that one ships inside torch's nvidia-* wheels.

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "cuda_env.sh: source this file (source cuda_env.sh /path/to/cuda);" \
       "running it cannot change your shell" >&2
  exit 2
fi

_cuda_env_drop() {  # print the ':'-list $1 without the entry $2
  local out="" part parts
  IFS=: read -r -a parts <<< "$1"
  for part in "${parts[@]}"; do
    [ "$part" = "$2" ] || out="${out:+$out:}$part"
  done
  printf '%s' "$out"
}

_cuda_env_use() {
  local root="${1:-${CUDA_ROOT:-}}"
  root="${root%/}"
  if [ -z "$root" ]; then
    echo "cuda_env.sh: give the toolkit root," \
         "e.g. source cuda_env.sh /usr/local/cuda-12.6" >&2
    return 2
  fi
  if [ ! -x "$root/bin/nvcc" ]; then
    echo "cuda_env.sh: no executable $root/bin/nvcc; give the toolkit root" \
         "(the folder holding bin/ and lib64/), not its bin/" >&2
    return 1
  fi
  local path="$PATH" libs="${LD_LIBRARY_PATH:-}"
  if [ -n "${CUDA_HOME:-}" ]; then  # switching: drop the previous toolkit's entries
    path="$(_cuda_env_drop "$path" "$CUDA_HOME/bin")"
    libs="$(_cuda_env_drop "$libs" "$CUDA_HOME/lib64")"
    libs="$(_cuda_env_drop "$libs" "$CUDA_HOME/extras/CUPTI/lib64")"
  fi
  export CUDA_HOME="$root"  # the toolkit root: one folder, no /bin, no ':$CUDA_HOME'
  export PATH="$root/bin${path:+:$path}"
  export LD_LIBRARY_PATH="$root/lib64:$root/extras/CUPTI/lib64${libs:+:$libs}"
}

_cuda_env_use "$@"
eval "unset -f _cuda_env_use _cuda_env_drop; return $?"
