// Apollo Client 4, as a browser app would use it, against favgate's /graphql. Prints on
// stdout, as JSON, what each step returned (or the error it raised) and every HTTP request
// the client made (method, URL, body, status, answer); tests/test_apollo.py judges them.
//
// Usage: FAVGATE_TOKEN=<token> node apollo.mjs <url> apq|cache
//   apq    automatic persisted queries: a mutation and a query, each sent twice
//   cache  the normalized cache updated by a mutation's `record`, without a refetch
import { createHash } from "node:crypto";

import { ApolloClient, InMemoryCache, gql } from "@apollo/client";
import { HttpLink } from "@apollo/client/link/http";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url, scenario] = process.argv.slice(2);
const token = process.env.FAVGATE_TOKEN;
if (!url || !token || !["apq", "cache"].includes(scenario)) {
  console.error("usage: FAVGATE_TOKEN=<token> node apollo.mjs <url> apq|cache");
  process.exit(2);
}

const INSTANCE = "main";
const NUMBER = "5511999999999";

const FAVORITES = gql`
  query Favorites($instance: String!) {
    favorites(instance: $instance) {
      totalCount
      edges {
        node {
          id
          chatJid
          favorite
        }
      }
    }
  }
`;
const SET_FAVORITE = gql`
  mutation SetFavorite($instance: String!, $number: String!, $favorite: Boolean!) {
    setFavorite(instance: $instance, number: $number, favorite: $favorite) {
      success
      favorite
    }
  }
`;
const SET_FAVORITE_RECORD = gql`
  mutation SetFavoriteRecord($instance: String!, $number: String!, $favorite: Boolean!) {
    setFavorite(instance: $instance, number: $number, favorite: $favorite) {
      success
      record {
        id
        favorite
      }
    }
  }
`;
const FAVORITE_FIELDS = gql`
  fragment FavoriteFields on Favorite {
    id
    favorite
  }
`;

// Every request the client makes, as the server saw it and answered it.
const requests = [];

async function recordingFetch(input, init = {}) {
  const response = await fetch(input, init);
  const text = await response.clone().text();
  requests.push({
    method: init.method ?? "GET",
    url: String(input),
    body: typeof init.body === "string" ? JSON.parse(init.body) : null,
    status: response.status,
    answer: parseJson(text),
  });
  return response;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function sha256(text) {
  return createHash("sha256").update(text).digest("hex");
}

function client({ persisted }) {
  const http = new HttpLink({ uri: url, fetch: recordingFetch, headers: { token } });
  // GET for the hash-only requests of queries: a CDN could cache them.
  const link = persisted
    ? new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(http)
    : http;
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

// Runs one step; its result (or error) and the requests it made.
async function step(name, run) {
  const first = requests.length;
  const outcome = { name };
  try {
    outcome.result = await run();
  } catch (error) {
    outcome.error = String(error?.message ?? error);
  }
  outcome.requests = requests.slice(first);
  return outcome;
}

async function apq() {
  const apollo = client({ persisted: true });
  const variables = { instance: INSTANCE, number: NUMBER, favorite: true };
  const mutate = () => apollo.mutate({ mutation: SET_FAVORITE, variables });
  const query = () =>
    apollo.query({ query: FAVORITES, variables, fetchPolicy: "network-only" });
  return [
    await step("mutation, first", mutate),
    await step("mutation, again", mutate),
    await step("query, first", query),
    await step("query, again", query),
  ];
}

async function cache() {
  const apollo = client({ persisted: false });
  const variables = { instance: INSTANCE };
  const listed = await step("query", () => apollo.query({ query: FAVORITES, variables }));
  const changed = await step("mutation", () =>
    apollo.mutate({
      mutation: SET_FAVORITE_RECORD,
      variables: { instance: INSTANCE, number: NUMBER, favorite: false },
    }),
  );
  const node = listed.result?.data?.favorites?.edges?.[0]?.node;
  const id = node && apollo.cache.identify(node);
  const read = await step("read", async () => ({
    data: {
      readQuery: apollo.readQuery({ query: FAVORITES, variables }),
      readFragment: id ? apollo.cache.readFragment({ id, fragment: FAVORITE_FIELDS }) : null,
      cacheOnly: (await apollo.query({ query: FAVORITES, variables, fetchPolicy: "cache-only" }))
        .data,
    },
  }));
  return [listed, changed, read];
}

const steps = scenario === "apq" ? await apq() : await cache();
console.log(JSON.stringify(steps));
