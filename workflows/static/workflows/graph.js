"use strict";

// Draw every element that carries a data-dot attribute as an SVG picture,
// with Graphviz compiled to WebAssembly (Viz.js, shipped beside this file).
document.addEventListener("DOMContentLoaded", () => {
  const targets = document.querySelectorAll("[data-dot]");
  if (targets.length === 0) {
    return;
  }
  if (!window.Viz) {
    targets.forEach((target) => {
      target.textContent = "The picture library did not load; the DOT text is below.";
    });
    return;
  }

  window.Viz.instance().then((viz) => {
    targets.forEach((target) => {
      try {
        target.replaceChildren(viz.renderSVGElement(target.dataset.dot));
        target.dataset.rendered = "true";
      } catch (error) {
        target.textContent = `The picture could not be drawn: ${error}`;
      }
    });
  });
});
