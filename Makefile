# acli: cluster management CLI and its cluster manager.
GO ?= go
BIN := bin
PROTOS := $(wildcard api/acli/v1/*.proto)

.PHONY: all build demo test test-unit test-e2e proto bench bench-fanout lint docs clean

all: build

build:
	$(GO) build -o $(BIN)/acli ./cmd/acli
	$(GO) build -o $(BIN)/clusterd ./cmd/clusterd

# Regenerate the committed protobuf code (needs Debian's protobuf-compiler).
proto:
	protoc -I api \
		--plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
		--plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
		--go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative \
		$(PROTOS:api/%=%)

test: build
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Regenerate docs/reference/*.md and docs/man/*.1 from the command registry
# (cmd/acli-docs' test fails when they are stale).
docs:
	$(GO) run ./cmd/acli-docs -out docs

clean:
	rm -rf $(BIN) .demo
