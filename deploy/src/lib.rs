//! `wisp-deploy-check`: the test that keeps `deploy/` honest.
//!
//! This crate has no code of its own: everything is in `tests/manifests.rs`, which renders the
//! kustomize base and every overlay under `deploy/overlays/` with `kubectl kustomize` (offline, no
//! cluster), parses each document into its typed `k8s-openapi` struct, and asserts the invariants
//! operators rely on (node placement, probes, resources, non-root, RBAC verbs, pinned image tags,
//! the pinned `WISP_*` variables and ports). Nothing here is built into a wisp binary; the test
//! costs one `kubectl` process per overlay (tens of milliseconds each) and lives for one test run.
