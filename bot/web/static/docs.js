/* The API documentation page: Swagger UI (from the fastapi-offline package) over /api/openapi.json.
   "Try it out" requests go with the session cookie and the CSRF token, like the dashboard's. */
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger",
    deepLinking: true,
    requestInterceptor: (request) => {
      if (request.method && request.method !== "GET") request.headers["X-CSRF-Token"] = csrf;
      return request;
    },
  });
})();
