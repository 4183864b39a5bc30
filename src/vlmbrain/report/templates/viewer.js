/* The report's interactive surface maps (vlmbrain/report/viewer.py writes the data).
 *
 * Every map is a <div class="sv"> holding its values (int16 codes, gzip + base64) and a button.
 * A click unpacks plotly.js (once), the meshes (once) and the map, and draws both inflated
 * hemispheres with WebGL: drag to rotate, scroll to zoom, the slider hides |values| below a
 * threshold, hovering names the grayordinate, its network and its value. Nothing is fetched.
 * Browsers allow few WebGL contexts at a time: at most MAX_LIVE maps stay open.
 */
(function () {
  "use strict";
  var MAX_LIVE = 4;
  var NO_VALUE = -32768;
  var MEDIAL = "rgb(165,165,165)";
  var VIEWS = [
    ["top", [true, true], {x: 0, y: -0.05, z: 1.45}, {x: 0, y: 1, z: 0}],
    ["left lateral", [true, false], {x: -1.6, y: 0, z: 0}, {x: 0, y: 0, z: 1}],
    ["left medial", [true, false], {x: 1.6, y: 0, z: 0}, {x: 0, y: 0, z: 1}],
    ["right medial", [false, true], {x: -1.6, y: 0, z: 0}, {x: 0, y: 0, z: 1}],
    ["right lateral", [false, true], {x: 1.6, y: 0, z: 0}, {x: 0, y: 0, z: 1}]
  ];
  var live = [];
  var plotlyReady = null;
  var meshReady = null;

  function bytes(text) {
    var bin = atob(text.trim());
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function gunzip(text) {
    var stream = new Blob([bytes(text)]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).arrayBuffer();
  }

  function loadPlotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyReady) {
      plotlyReady = gunzip(document.getElementById("sv-plotly").textContent).then(function (buf) {
        var s = document.createElement("script");
        s.textContent = new TextDecoder().decode(buf);
        document.head.appendChild(s);
        return window.Plotly;
      });
    }
    return plotlyReady;
  }

  function loadMesh() {
    if (meshReady) return meshReady;
    var m = JSON.parse(document.getElementById("sv-mesh").textContent);
    meshReady = Promise.all([m.coords, m.faces_left, m.faces_right, m.shade, m.gray_delta, m.network].map(gunzip))
      .then(function (parts) {
        var c = new Int16Array(parts[0]);
        var shade = new Uint8Array(parts[3]);
        var delta = new Int32Array(parts[4]);
        var network = new Uint8Array(parts[5]);
        var n = m.n_left + m.n_right;
        var gray = new Int32Array(n);
        var acc = 0;
        for (var v = 0; v < n; v++) { acc += delta[v]; gray[v] = acc; }
        function hemi(start, count, facesBuf) {
          var faces = new Uint16Array(facesBuf);
          var x = new Float32Array(count), y = new Float32Array(count), z = new Float32Array(count);
          for (var v = 0; v < count; v++) {
            x[v] = c[3 * (start + v)] * m.coord_scale;
            y[v] = c[3 * (start + v) + 1] * m.coord_scale;
            z[v] = c[3 * (start + v) + 2] * m.coord_scale;
          }
          var nf = faces.length / 3;
          var i = new Uint32Array(nf), j = new Uint32Array(nf), k = new Uint32Array(nf);
          for (var f = 0; f < nf; f++) { i[f] = faces[3 * f]; j[f] = faces[3 * f + 1]; k[f] = faces[3 * f + 2]; }
          return {start: start, count: count, x: x, y: y, z: z, i: i, j: j, k: k};
        }
        var grey = [];
        for (var s = 0; s < 256; s++) grey.push("rgb(" + s + "," + s + "," + s + ")");
        return {
          hemis: [hemi(0, m.n_left, parts[1]), hemi(m.n_left, m.n_right, parts[2])],
          shade: shade, gray: gray, network: network, grey: grey,
          names: m.network_names, lut: m.lut
        };
      });
    return meshReady;
  }

  function decodeMap(el) {
    var kind = el.getAttribute("data-kind");
    return gunzip(el.querySelector(".sv-data").textContent).then(function (buf) {
      if (kind === "categorical") {
        var cats = JSON.parse(el.getAttribute("data-categories"));
        return {kind: kind, codes: new Uint8Array(buf), categories: cats};
      }
      var codes = new Int16Array(buf);
      var scale = parseFloat(el.getAttribute("data-scale"));
      var values = new Float32Array(codes.length);
      var vmax = 0;
      for (var v = 0; v < codes.length; v++) {
        values[v] = codes[v] === NO_VALUE ? NaN : codes[v] * scale;
        if (codes[v] !== NO_VALUE && Math.abs(values[v]) > vmax) vmax = Math.abs(values[v]);
      }
      return {kind: kind, values: values, vmax: vmax > 0 ? vmax : 1};
    });
  }

  function fmt(x) {
    if (!isFinite(x)) return "—";
    var a = Math.abs(x);
    return a !== 0 && (a < 1e-3 || a >= 1e4) ? x.toExponential(2) : x.toFixed(a < 1 ? 3 : 2);
  }

  // vertex colours of both hemispheres and how many vertices are coloured
  function colours(mesh, map, threshold) {
    var out = [], shown = 0;
    mesh.hemis.forEach(function (h) {
      var col = new Array(h.count);
      for (var v = 0; v < h.count; v++) {
        var g = h.start + v;
        var bg = mesh.gray[g] < 0 ? MEDIAL : mesh.grey[mesh.shade[g]];
        if (map.kind === "categorical") {
          var cat = map.categories[String(map.codes[g])];
          col[v] = cat ? cat[1] : bg;
          if (cat) shown++;
        } else {
          var x = map.values[g];
          if (x !== x || Math.abs(x) < threshold || x === 0) { col[v] = bg; continue; }
          var idx = Math.max(0, Math.min(255, Math.round((x / map.vmax + 1) / 2 * 255)));
          col[v] = mesh.lut[idx];
          shown++;
        }
      }
      out.push(col);
    });
    return {colours: out, shown: shown};
  }

  function hoverTexts(mesh, map, units) {
    return mesh.hemis.map(function (h) {
      var text = new Array(h.count);
      for (var v = 0; v < h.count; v++) {
        var g = h.start + v;
        if (mesh.gray[g] < 0) { text[v] = "medial wall (no grayordinate)"; continue; }
        var head = "grayordinate " + mesh.gray[g] + "<br>network " + mesh.names[mesh.network[g]];
        if (map.kind === "categorical") {
          var cat = map.categories[String(map.codes[g])];
          text[v] = head + "<br>" + (cat ? cat[0] : "none");
        } else {
          var x = map.values[g];
          text[v] = head + "<br>" + units + " " + (x !== x ? "not shown (not significant)" : fmt(x));
        }
      }
      return text;
    });
  }

  function element(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function legend(mesh, map, units) {
    var box = element("div", "sv-legend");
    if (map.kind === "categorical") {
      Object.keys(map.categories).forEach(function (id) {
        var sw = element("span", "sv-swatch");
        sw.style.background = map.categories[id][1];
        box.appendChild(sw);
        box.appendChild(element("span", "sv-cat", map.categories[id][0]));
      });
      return box;
    }
    var stops = [];
    for (var s = 0; s <= 10; s++) stops.push(mesh.lut[Math.round(s * 25.5)]);
    box.appendChild(element("span", "", fmt(-map.vmax)));
    var bar = element("span", "sv-gradient");
    bar.style.background = "linear-gradient(to right," + stops.join(",") + ")";
    box.appendChild(bar);
    box.appendChild(element("span", "", fmt(map.vmax) + " " + units));
    return box;
  }

  function close(el) {
    var panel = el.querySelector(".sv-live");
    if (panel) {
      var plot = panel.querySelector(".sv-plot");
      if (window.Plotly && plot) window.Plotly.purge(plot);
      panel.remove();
    }
    var button = el.querySelector(".sv-open");
    if (button) { button.disabled = false; button.style.display = ""; }
    live = live.filter(function (x) { return x !== el; });
  }

  function open(el) {
    var button = el.querySelector(".sv-open");
    if (el.querySelector(".sv-live")) return Promise.resolve();
    button.disabled = true;
    button.textContent = "Loading the interactive map…";
    if (typeof DecompressionStream === "undefined") {
      button.textContent = "This browser cannot unpack the embedded map (it has no DecompressionStream).";
      return Promise.resolve();
    }
    var units = el.getAttribute("data-units") || "value";
    return Promise.all([loadPlotly(), loadMesh(), decodeMap(el)]).then(function (res) {
      var Plotly = res[0], mesh = res[1], map = res[2];
      while (live.length >= MAX_LIVE) close(live[0]);
      var panel = element("div", "sv-live");
      var bar = element("div", "sv-bar");
      bar.appendChild(element("b", "", el.getAttribute("data-title") || ""));
      var views = element("span", "sv-views");
      VIEWS.forEach(function (v) {
        var b = element("button", "sv-view", v[0]);
        b.type = "button";
        b.addEventListener("click", function () {
          Plotly.restyle(plot, {visible: v[1]}, [0, 1]);
          Plotly.relayout(plot, {"scene.camera.eye": v[2], "scene.camera.up": v[3]});
        });
        views.appendChild(b);
      });
      bar.appendChild(views);
      var slider = null, label = null;
      if (map.kind !== "categorical") {
        var wrap = element("label", "sv-threshold-label", "threshold |" + units + "| ≥ ");
        slider = element("input", "sv-threshold");
        slider.type = "range";
        slider.min = "0";
        slider.max = String(map.vmax);
        slider.step = String(map.vmax / 200);
        slider.value = "0";
        label = element("span", "sv-threshold-value");
        wrap.appendChild(slider);
        wrap.appendChild(label);
        bar.appendChild(wrap);
      }
      var closer = element("button", "sv-close", "close");
      closer.type = "button";
      closer.addEventListener("click", function () { close(el); });
      bar.appendChild(closer);
      panel.appendChild(bar);
      var plot = element("div", "sv-plot");
      panel.appendChild(plot);
      panel.appendChild(legend(mesh, map, units));
      var readout = element("div", "sv-readout", "Hover the brain: grayordinate, network and value. Drag to rotate, scroll to zoom.");
      panel.appendChild(readout);
      el.appendChild(panel);
      button.style.display = "none";
      button.textContent = "Open the interactive map: rotate, zoom, threshold, hover";

      var first = colours(mesh, map, 0);
      var texts = hoverTexts(mesh, map, units);
      function note(n) {
        if (label) label.textContent = " " + fmt(parseFloat(slider.value)) + " (" + n + " vertices coloured)";
      }
      note(first.shown);
      var traces = mesh.hemis.map(function (h, t) {
        return {
          type: "mesh3d", name: t ? "right" : "left", x: h.x, y: h.y, z: h.z, i: h.i, j: h.j, k: h.k,
          vertexcolor: first.colours[t], text: texts[t], hovertemplate: "%{text}<extra></extra>",
          lighting: {ambient: 0.62, diffuse: 0.5, specular: 0.05, roughness: 0.9, fresnel: 0.05},
          lightposition: {x: 0, y: 0, z: 100000}, flatshading: false, showscale: false
        };
      });
      var axis = {visible: false, showspikes: false};
      var layout = {
        margin: {l: 0, r: 0, t: 0, b: 0}, paper_bgcolor: "#ffffff", showlegend: false,
        scene: {xaxis: axis, yaxis: axis, zaxis: axis, aspectmode: "data", dragmode: "orbit",
                camera: {eye: VIEWS[0][2], up: VIEWS[0][3]}}
      };
      live.push(el);
      return Plotly.newPlot(plot, traces, layout, {displaylogo: false, responsive: true, scrollZoom: true})
        .then(function () {
          plot.on("plotly_hover", function (ev) {
            var p = ev && ev.points && ev.points[0];
            if (p && texts[p.curveNumber]) readout.innerHTML = texts[p.curveNumber][p.pointNumber].replace(/<br>/g, " · ");
          });
          if (slider) {
            slider.addEventListener("input", function () {
              var c = colours(mesh, map, parseFloat(slider.value));
              note(c.shown);
              Plotly.restyle(plot, {vertexcolor: c.colours}, [0, 1]);
            });
          }
          el.setAttribute("data-state", "open");
        });
    }).catch(function (err) {
      button.disabled = false;
      button.style.display = "";
      button.textContent = "The interactive map could not be opened (" + err.message + "); click to retry.";
      el.setAttribute("data-state", "failed");
    });
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest(".sv-open");
    if (b) open(b.closest(".sv"));
  });
  window.vlmbrainViewer = {open: open, close: close, live: function () { return live.slice(); }};
})();
