# Recipes a contributor expects. `just` is optional: each recipe is one plain command.

# Build every crate and binary.
build:
    cargo build --workspace

# The whole test suite, as CI runs it.
test:
    ./scripts/test

# Formatting and lints.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks (figures go to docs/performance.md).
bench:
    cargo bench -p echo-runner --bench startup
    cargo bench -p echo-runner --bench throughput -- --memory
    cargo bench -p echo-runner --bench serve
    cargo bench -p langgraph-runner --bench relay
    cargo bench -p langgraph-runner --bench driver
    cargo bench -p claude-runner --bench relay

# A local echo session, no cluster needed.
local-echo prompt="hello":
    cargo run -p echo-runner -- --local --prompt "{{prompt}}"

# A local interactive echo session: type lines, end with Ctrl-D.
local-echo-interactive:
    cargo run -p echo-runner -- --local --interactive

# A local LangGraph session in the pod, on a copy of the test graphs (needs ./scripts/test once).
local-langgraph-pod workflow="chat" prompt="hello":
    rm -rf /tmp/ambient-graphs && cp -r crates/ambient-adapter-langgraph/tests/server /tmp/ambient-graphs
    cargo run -p langgraph-runner -- --local --workspace /tmp/ambient-graphs --langgraph-python .venv/bin/python --workflow-id "{{workflow}}" --prompt "{{prompt}}"

# A local LangGraph session against a server you name (see the README to start one).
local-langgraph url="http://127.0.0.1:2024" workflow="chat" prompt="hello":
    cargo run -p langgraph-runner -- --local --langgraph-url "{{url}}" --workflow-id "{{workflow}}" --prompt "{{prompt}}"

# A local Claude session (needs ANTHROPIC_API_KEY, and ./scripts/test once for the CLI).
local-claude prompt="hello":
    cargo run -p claude-runner -- --local --claude-bin node_modules/@anthropic-ai/claude-code-linux-x64/claude --prompt "{{prompt}}"

# The example runner for a made-up framework.
local-parrot prompt="hello there":
    cargo run -p parrot-runner -- --local --prompt "{{prompt}}"

# The local backend on its own, for a runner in another terminal.
local-backend token="dev-token":
    cargo run -p local-backend -- --token "{{token}}" --session local/local-session

# The runner images (needs a Docker engine).
images:
    docker build -f Dockerfile.langgraph -t ambient-runner-langgraph .
    docker build -f Dockerfile.claude -t ambient-runner-claude .
