// favgate's GraphiQL page: opens on an example document and a header editor that takes
// the token. A separate file rather than an inline script, so that the page's
// Content-Security-Policy can allow scripts from favgate only.
(function () {
  "use strict";

  var EXAMPLE = [
    "# favgate's GraphQL API",
    "#",
    "# 1. Paste a token into the Headers tab below.",
    "#    `make run` prints two for the instance \"demo\":",
    "#    an account token reaches every instance of",
    "#    its account, an instance token only its own.",
    "# 2. Run an operation with the ▶ button.",
    "",
    "mutation SetFavorite {",
    '  setFavorite(instance: "demo", number: "+55 11 99999-9999", favorite: true) {',
    "    success",
    "    message",
    "    chatJid",
    "    messageId",
    "    favorite",
    "    type",
    "  }",
    "}",
    "",
    "query Favorites {",
    '  favorites(instance: "demo", first: 20) {',
    "    totalCount",
    "    edges {",
    "      cursor",
    "      node {",
    "        type chatJid messageId favoritedAt",
    "        message { text fromMe }",
    "      }",
    "    }",
    "    pageInfo { hasNextPage endCursor }",
    "  }",
    "}",
    "",
  ].join("\n");

  var HEADERS = JSON.stringify({ token: "<paste your token>" }, null, 2);

  // Same origin for queries and for subscriptions (graphql-transport-ws): GraphiQL sends
  // the header editor's object as the WebSocket connection_init payload, token included.
  var url = window.location.href.split(/[?#]/)[0];
  var socket = new URL(url);
  socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";

  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: socket.toString() });

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: EXAMPLE,
      defaultHeaders: HEADERS,
      isHeadersEditorEnabled: true,
      // Tokens stay out of the browser's storage.
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: "headers",
    })
  );
})();
