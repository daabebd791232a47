// Mounts GraphiQL (loaded before this file, as are React and graphql-ws) on #graphiql.
// Queries and mutations go to the endpoint the page names (data-endpoint, /graphql) over
// HTTP; subscriptions to data-subscription-endpoint (/graphql/ws) over graphql-transport-ws.
// A token typed into GraphiQL's Headers tab as {"Authorization": "Bearer ..."} is sent with
// HTTP requests by GraphiQL itself, and in connection_init when a WebSocket opens (read
// from GraphiQL's saved headers).
(function () {
  'use strict';
  var mount = document.getElementById('graphiql');
  var wsUrl =
    (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + mount.dataset.subscriptionEndpoint;

  function savedAuthorization() {
    try {
      var headers = JSON.parse(localStorage.getItem('graphiql:headers') || '{}');
      for (var name in headers) {
        if (name.toLowerCase() === 'authorization') return String(headers[name]);
      }
    } catch (e) {
      // Headers that are not JSON yet (being typed): connect without a token.
    }
    return null;
  }

  var wsClient = graphqlWs.createClient({
    url: wsUrl,
    lazy: true,
    connectionParams: function () {
      var authorization = savedAuthorization();
      return authorization ? { authorization: authorization } : {};
    },
  });
  var fetcher = GraphiQL.createFetcher({ url: mount.dataset.endpoint, wsClient: wsClient });
  var root = ReactDOM.createRoot(mount);
  root.render(React.createElement(GraphiQL, { fetcher: fetcher }));
})();
