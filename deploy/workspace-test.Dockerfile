# berth/workspace-test:dev: the workspace image plus the end-to-end suites'
# development server (scheduler/e2e/testapp, static: bin/testapp from
# `make build`). Test-only: scripts/build-images.sh builds it when
# BERTH_TEST_IMAGES=1 (make test sets it), after berth/workspace:dev, and
# scripts/cluster-up.sh then loads it into the local hosts. The e2e suites
# create workspaces with config.base_image = berth/workspace-test:dev and
# start `testapp --port 3000` with an exec.
#   docker build -f deploy/workspace-test.Dockerfile -t berth/workspace-test:dev .
# Its own ARG name: build-images.sh passes BASE_IMAGE (the Debian base) to
# every build.
ARG WORKSPACE_IMAGE=berth/workspace:dev
FROM ${WORKSPACE_IMAGE}

COPY bin/testapp /usr/local/bin/testapp
