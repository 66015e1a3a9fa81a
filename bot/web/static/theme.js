/* tradebot: the theme, set before the page paints (loaded in <head>). The trader's choice in this
   browser (the header's toggle: dark or light), else the system's (prefers-color-scheme, in CSS). */
"use strict";
(function () {
  let choice = null;
  try { choice = localStorage.getItem("tradebot.theme"); } catch (e) { /* storage off: follow the system */ }
  if (choice === "dark" || choice === "light") document.documentElement.dataset.theme = choice;
})();
