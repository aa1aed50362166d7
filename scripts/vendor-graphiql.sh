#!/usr/bin/env bash
# Vendors the GraphiQL page's scripts and stylesheet into favgate/static/graphiql/, so that
# favgate serves GraphiQL with no internet access. The committed files are what favgate
# and CI use; run this only to reproduce or upgrade them (it needs npm and the network).
#
#   scripts/vendor-graphiql.sh            # the pinned versions below
#   GRAPHIQL_VERSION=3.8.3 REACT_VERSION=18.3.1 scripts/vendor-graphiql.sh
#
# graphiql 3.x is the last line that ships a standalone browser bundle (graphiql.min.js,
# expecting React and ReactDOM as globals); React 18 is the last with UMD builds.
set -euo pipefail

GRAPHIQL_VERSION="${GRAPHIQL_VERSION:-3.8.3}"
REACT_VERSION="${REACT_VERSION:-18.3.1}"

cd "$(dirname "$0")/.."
dest=favgate/static/graphiql
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent \
    "graphiql@${GRAPHIQL_VERSION}" "react@${REACT_VERSION}" "react-dom@${REACT_VERSION}" >/dev/null)

unpack() {  # unpack <package> <version>: into $work/<package>
    mkdir -p "$work/$1"
    tar -xzf "$work/$1-$2.tgz" -C "$work/$1" --strip-components=1
}
unpack graphiql "$GRAPHIQL_VERSION"
unpack react "$REACT_VERSION"
unpack react-dom "$REACT_VERSION"

rm -rf "$dest"
mkdir -p "$dest"
cp "$work/graphiql/graphiql.min.js" "$work/graphiql/graphiql.min.css" "$dest/"
cp "$work/react/umd/react.production.min.js" "$dest/"
cp "$work/react-dom/umd/react-dom.production.min.js" "$dest/"
# The licences travel with the code they cover.
cp "$work/graphiql/LICENSE" "$dest/LICENSE.graphiql"
cp "$work/react/LICENSE" "$dest/LICENSE.react"
cp "$work/react-dom/LICENSE" "$dest/LICENSE.react-dom"

{
    echo "# Vendored by scripts/vendor-graphiql.sh from the npm registry; do not edit."
    echo "# A test checks every file below against its sha256."
    echo "graphiql ${GRAPHIQL_VERSION}"
    echo "react ${REACT_VERSION}"
    echo "react-dom ${REACT_VERSION}"
    echo
    (cd "$dest" && sha256sum graphiql.min.js graphiql.min.css react.production.min.js \
        react-dom.production.min.js LICENSE.graphiql LICENSE.react LICENSE.react-dom)
} >"$dest/VERSIONS"

echo "vendored graphiql ${GRAPHIQL_VERSION}, react ${REACT_VERSION} into ${dest}"
