#!/usr/bin/env bash
# The README's C++ must work as written: extracts every C++ block of README.md, compiles it with
# the compile command the README gives (its first ```sh line that starts with `g++` and compiles
# a .cpp), with the compiler named here and warnings as errors, runs it in a directory where
# `attn/` is this source tree (the layout the README asks for), and checks that each block prints
# what its `// prints ...` comments promise.
#
#   tests/readme_snippets.sh <README.md> <source dir> <work dir> <c++ compiler>
#
# Rules, so new snippets are covered without editing this script:
# - A block holding `int main(` is a complete program; the first one is the README's first
#   program, saved under the file name its compile command uses. A further program is saved,
#   compiled and run by the first ```sh `g++` line after it (before the next C++ block), or
#   else by the first program's command.
# - Every other block is a fragment: statements for the end of main() of the first program. All
#   fragments go into ONE generated program (snippets.cpp: the first program as written, then
#   each fragment in its own try { } scope after a printed marker), so the library is compiled
#   once per compiler; the first program is then not compiled a second time on its own (its text
#   opens snippets.cpp, and its output, before the first marker, is checked against its own
#   promises). `#line` directives make compile errors point at README.md's lines.
# - `// prints <text>` promises that the block prints <text> (whitespace ignored; a trailing `…`
#   or `...` means "and more"). A comment holding a 4-decimal number anywhere else in a block is
#   refused: every number the README shows must be one a test checks.
# A failure names the block by its README line and first line, and says what it printed.
set -uo pipefail

if (($# != 4)); then
  echo "usage: $0 <README.md> <source dir> <work dir> <c++ compiler>" >&2
  exit 2
fi
readme=$(realpath "$1")
source_dir=$(realpath "$2")
work=$3
cxx=$4
warnings="-Werror -Wall -Wextra -Wpedantic -Wshadow"

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

rm -rf "$work"
mkdir -p "$work/blocks" "$work/run"
work=$(realpath "$work")
ln -s "$source_dir" "$work/run/attn"

# ---- 1. Extract the C++ blocks: blocks/<n>.cpp, and index.tsv: n, README line of the block's
# first line, that first line -------------------------------------------------------------------
awk -v dir="$work/blocks" '
  function lang(line) {  # the fence language of an opening fence, lower case
    sub(/^[ \t]*```[ \t]*/, "", line); sub(/[ \t].*$/, "", line); return tolower(line)
  }
  !inside && /^[ \t]*```/ {
    language = lang($0); inside = 1; cpp = (language ~ /^(cpp|c\+\+|cxx|cc)$/)
    if (cpp) { n++; file = dir "/" n ".cpp"; printf "" > file; first = 0 }
    next
  }
  inside && /^[ \t]*```[ \t]*$/ { inside = 0; if (cpp) close(file); next }
  inside && cpp {
    print > file
    if (!first) { first = 1; printf "%d\t%d\t%s\n", n, NR, $0 > (dir "/index.tsv") }
  }
  END { if (inside) { print "README.md: a ``` block is never closed" > "/dev/stderr"; exit 1 } }
' "$readme" || exit 1
touch "$work/blocks/index.tsv"
blocks=$(wc -l < "$work/blocks/index.tsv")
fences=$(grep -ciE '^[[:space:]]*```[[:space:]]*(cpp|c\+\+|cxx|cc)([[:space:]]|$)' "$readme")
if ((blocks != fences)); then
  fail "README.md has $fences C++ fences but $blocks non-empty C++ blocks were extracted"
fi
if ((blocks == 0)); then
  echo "FAIL: no C++ block in $readme"
  exit 1
fi

declare -a block_line block_title
while IFS=$'\t' read -r n line title; do
  block_line[n]=$line
  title=$(tr -s " " <<< "$title")
  ((${#title} > 72)) && title="${title:0:69}..."
  block_title[n]=$title
done < "$work/blocks/index.tsv"
name() { echo "README.md line ${block_line[$1]} (${block_title[$1]})"; }

# ---- 2. The compile commands, taken from the README: every ```sh line starting with `g++ ` that
# compiles a .cpp (commands.tsv: README line, command). The first is the first program's; a
# further program uses the first such line after it (and before the next C++ block), if any.
awk '
  /^[ \t]*```/ { if (inside) { inside = 0 } else { inside = 1; sh = ($0 ~ /```[ \t]*(sh|bash|console|shell)[ \t]*$/) } next }
  inside && sh && /^g\+\+ .*\.cpp/ { printf "%d\t%s\n", NR, $0 }
' "$readme" > "$work/blocks/commands.tsv"
command=$(head -n 1 "$work/blocks/commands.tsv" | cut -f2-)
if [[ -z $command ]]; then
  echo "FAIL: README.md has no \`\`\`sh line starting with 'g++ ' that compiles a .cpp file"
  exit 1
fi
# parse_command <command>: sets compile (before " && "), source_file, exe; fails unless it reads
# 'g++ ... <file>.cpp ... -o <exe> ... && ./<exe>'.
parse_command() {
  compile=${1%% && *}
  local run=${1#"$compile"}
  run=${run# && }
  source_file=$(tr ' ' '\n' <<< "$compile" | grep -m1 '\.cpp$')
  exe=${run#./}
  if [[ ! $run =~ ^\./[A-Za-z0-9_.-]+$ || $compile != *"-o $exe"* || -z $source_file ]]; then
    echo "FAIL: a README compile command must read 'g++ ... <file>.cpp -o <exe> && ./<exe>':"
    echo "  $1"
    return 1
  fi
}
parse_command "$command" || exit 1
first_compile=$compile first_source=$source_file first_exe=$exe
echo "README compile command: $command"
echo "compiler: $cxx ($("$cxx" --version | head -n 1)), plus $warnings"

# command_after <block>: the README's own command for a further program, or the first one.
command_after() {
  local next=$(($1 + 1)) end=999999999 line text
  [[ -n ${block_line[next]:-} ]] && end=${block_line[next]}
  while IFS=$'\t' read -r line text; do
    if ((line > block_line[$1] && line < end)); then
      echo "$text"
      return
    fi
  done < "$work/blocks/commands.tsv"
  echo "$command"
}

# compile_program <source> <exe>: the parsed command (compile, source_file, exe) for that file,
# with this compiler.
compile_program() {
  local cmd=${compile/#g++ /$cxx $warnings }
  cmd=${cmd/" $source_file"/" $1"}
  cmd=${cmd/"-o $exe"/"-o $2"}
  echo "  \$ $cmd"
  local start end
  start=$(date +%s.%N)
  (cd "$work/run" && bash -c "$cmd") > "$work/run/$2.compile.log" 2>&1
  local status=$?
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v f="$1" 'BEGIN { printf "  compiled %s in %.1f s\n", f, e - s }'
  cat "$work/run/$2.compile.log"
  return $status
}

# expected <block>: the block's promised outputs, one a line.
expected() {
  sed -n 's|.*// prints \(.*\)$|\1|p' "$work/blocks/$1.cpp" | sed -e 's/[[:space:]]*$//' \
    -e 's/[[:space:]]*\(…\|\.\.\.\)$//'
}

# check_output <block> <output file>: every promise of the block appears in the output.
check_output() {
  local promise squeezed
  squeezed=$(tr -d '[:space:]' < "$2")
  while IFS= read -r promise; do
    [[ -z $promise ]] && continue
    if [[ $squeezed != *"$(tr -d '[:space:]' <<< "$promise")"* ]]; then
      fail "$(name "$1") promises '$promise' but printed:"
      sed 's/^/    | /' "$2"
    else
      echo "  ok: $(name "$1") prints $promise"
    fi
  done < <(expected "$1")
}

# ---- 3. Sort the blocks; refuse numbers in comments that no test checks --------------------------
programs=()
fragments=()
for ((n = 1; n <= blocks; n++)); do
  if grep -q 'int main(' "$work/blocks/$n.cpp"; then
    programs+=("$n")
  else
    fragments+=("$n")
  fi
  unchecked=$(grep -v '// prints ' "$work/blocks/$n.cpp" | grep -E '//.*[0-9]\.[0-9]{4}')
  if [[ -n $unchecked ]]; then
    fail "$(name "$n") shows numbers in a comment that no '// prints' checks: $unchecked"
  fi
done
if ((${#programs[@]} == 0)); then
  echo "FAIL: no C++ block of README.md holds 'int main(': there is no first program"
  exit 1
fi
first=${programs[0]}
echo "first program: $(name "$first"), saved as $source_file"
echo "fragments: ${#fragments[@]}, each run inside main() of the first program"

# ---- 4. Each complete program, as the README tells a user to build and run it -------------------
for n in "${programs[@]}"; do
  ((n == first && ${#fragments[@]} > 0)) && continue  # built and checked inside snippets.cpp
  if ((n == first)); then
    compile=$first_compile source_file=$first_source exe=$first_exe
  else
    parse_command "$(command_after "$n")" || { fail "$(name "$n"): no usable command"; continue; }
  fi
  file=$source_file
  program=$exe
  cp "$work/blocks/$n.cpp" "$work/run/$file"
  echo "== $(name "$n")"
  if ! compile_program "$file" "$program"; then
    fail "$(name "$n") does not compile (line k of $file is README.md line ${block_line[n]} + k - 1)"
    continue
  fi
  (cd "$work/run" && "./$program") > "$work/run/$program.out" 2>&1
  status=$?
  if ((status != 0)); then
    fail "$(name "$n") exits with status $status:"
    sed 's/^/    | /' "$work/run/$program.out"
  fi
  check_output "$n" "$work/run/$program.out"
done

# ---- 5. All fragments in one program: the first program, each fragment at the end of main() ----
if ((${#fragments[@]} > 0)); then
  generated=$work/run/snippets.cpp
  main_end=$(grep -n '^}[[:space:]]*$' "$work/blocks/$first.cpp" | tail -n 1 | cut -d: -f1)
  if [[ -z $main_end ]]; then
    echo "FAIL: $(name "$first"): main() must end with a '}' alone on the last such line"
    exit 1
  fi
  {
    echo "#line ${block_line[first]} \"README.md\""
    head -n $((main_end - 1)) "$work/blocks/$first.cpp"
    echo "  bool readme_threw = false;  // a fragment that throws is reported; the others still run"
  } > "$generated"
  for n in "${fragments[@]}"; do
    {
      echo "  std::cout << \"\\n@@snippet $n@@\" << std::endl;"
      echo "  try {"
      echo "#line ${block_line[n]} \"README.md\""
      cat "$work/blocks/$n.cpp"
    } >> "$generated"
    echo "#line $(($(wc -l < "$generated") + 2)) \"snippets.cpp\"" >> "$generated"
    {
      echo "  } catch (const std::exception& readme_error) {"
      echo "    std::cout << \"\\n@@threw $n@@ \" << readme_error.what() << std::endl;"
      echo "    readme_threw = true;"
      echo "  }"
    } >> "$generated"
  done
  printf "  return readme_threw ? 1 : 0;\n}\n" >> "$generated"

  echo "== ${#fragments[@]} fragments in snippets.cpp"
  compile=$first_compile source_file=$first_source exe=$first_exe
  if ! compile_program snippets.cpp snippets; then
    fail "the fragments do not compile (the errors above give their README.md lines)"
  else
    (cd "$work/run" && ./snippets) > "$work/run/snippets.out" 2>&1
    status=$?
    last=$(sed -n 's/^@@snippet \([0-9]*\)@@$/\1/p' "$work/run/snippets.out" | tail -n 1)
    threw=$(sed -n 's/^@@threw \([0-9]*\)@@.*/\1/p' "$work/run/snippets.out")
    for n in $threw; do
      fail "$(name "$n") throws: $(sed -n "s/^@@threw $n@@ //p" "$work/run/snippets.out")"
    done
    if [[ -z $threw ]] && ((status != 0)); then
      fail "snippets exit with status $status${last:+, in $(name "$last")}"
      sed 's/^/    | /' "$work/run/snippets.out"
    fi
    # The first program's own output comes before the first marker.
    awk '/^@@snippet [0-9]+@@$/ { exit } { print }' "$work/run/snippets.out" > "$work/run/first.out"
    check_output "$first" "$work/run/first.out"
    for n in "${fragments[@]}"; do
      [[ " $threw " == *" $n "* ]] && continue  # reported above
      awk -v n="$n" '/^@@snippet [0-9]+@@$/ { inside = ($0 == "@@snippet " n "@@"); next }
                     /^@@threw / { inside = 0 } inside' "$work/run/snippets.out" > "$work/run/snippet_$n.out"
      check_output "$n" "$work/run/snippet_$n.out"
    done
  fi
fi

# ---- 6. Coverage: every block and what was checked of it ---------------------------------------
echo "== coverage"
for ((n = 1; n <= blocks; n++)); do
  kind=fragment
  [[ " ${programs[*]} " == *" $n "* ]] && kind=program
  printf '  %-8s %2d promise(s)  %s\n' "$kind" "$(expected "$n" | grep -c .)" "$(name "$n")"
done
if ((failures > 0)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "README.md: $blocks C++ blocks compile with $cxx, run, and print what they promise"
