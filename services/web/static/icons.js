// Category icons as inline SVG (no external assets). Drawn on a 64x64 grid in currentColor.
const S = 'fill="none" stroke="currentColor" stroke-width="5" stroke-linecap="round" stroke-linejoin="round"';
const F = 'fill="currentColor"';

const PATHS = {
  fire: `<path ${F} fill-rule="evenodd" d="M33 4c3 12 17 20 17 36a18 18 0 0 1-36 0c0-8 4-14 9-18 0 6 2 10 6 12-1-10 1-20 4-30z
         M32 54a7 7 0 0 1-7-7c0-4 3-7 6-11 1 3 2 5 5 7 2 1.5 3 3 3 5a7 7 0 0 1-7 6z"/>`,
  co: `<circle ${S} cx="32" cy="32" r="26"/>
       <text x="32" y="42" text-anchor="middle" font-family="system-ui,sans-serif" font-weight="800" font-size="26" ${F}>CO</text>`,
  siren: `<path ${S} d="M18 46V34a14 14 0 0 1 28 0v12"/><path ${F} d="M10 46h44v10H10z"/>
          <path ${S} d="M32 4v7M10 12l5 5M54 12l-5 5M4 30h6M54 30h6"/>`,
  door: `<path ${S} d="M16 58V8h32v50M8 58h48"/><circle ${F} cx="40" cy="34" r="4"/>`,
  baby: `<circle ${S} cx="32" cy="34" r="22"/><path ${S} d="M32 12c-4-6 4-10 6-5"/>
         <path ${S} d="M21 30l6 2M43 30l-6 2"/><ellipse ${F} cx="32" cy="45" rx="6" ry="5"/>`,
  phone: `<path ${F} d="M22 6l-8 1c-4 1-6 4-6 8 1 24 19 42 43 43 4 0 7-2 8-6l1-8-14-7-7 7c-7-4-12-9-16-16l7-7z"/>`,
  clock: `<circle ${S} cx="32" cy="35" r="21"/><path ${S} d="M32 23v12l8 6M9 14l9-8M55 14l-9-8M18 56l-4 5M46 56l4 5"/>`,
  glass: `<path ${S} d="M19 6h26l-3 20a10 10 0 0 1-20 0zM32 36v16M22 58h20"/>
          <path ${S} stroke-width="3" d="M50 8l8-4M52 18l9 1M6 8l-3-3M10 18l-7 2"/>`,
  dog: `<ellipse ${F} cx="32" cy="44" rx="13" ry="11"/><ellipse ${F} cx="13" cy="30" rx="6" ry="8"/>
        <ellipse ${F} cx="51" cy="30" rx="6" ry="8"/><ellipse ${F} cx="24" cy="14" rx="6" ry="8"/>
        <ellipse ${F} cx="40" cy="14" rx="6" ry="8"/>`,
  car: `<path ${F} d="M6 44V34l8-16h36l8 16v10z"/><path fill="rgba(0,0,0,.3)" d="M17 22h30l5 10H12z"/>
        <circle ${F} cx="17" cy="48" r="7"/><circle ${F} cx="47" cy="48" r="7"/>`,
  water: `<path ${F} d="M32 4C25 18 14 29 14 41a18 18 0 0 0 36 0C50 29 39 18 32 4z"/>`,
  bell: `<path ${F} d="M14 46h36l-5-8V27a13 13 0 0 0-26 0v11z"/><path ${F} d="M26 50h12a6 6 0 0 1-12 0z"/>`,
  sensor: `<rect ${F} x="23" y="4" width="18" height="32" rx="9"/><path ${S} d="M14 28a18 18 0 0 0 36 0M32 46v12M22 58h20"/>`,
  pin: `<path ${F} d="M32 4a20 20 0 0 0-20 20c0 15 20 36 20 36s20-21 20-36A20 20 0 0 0 32 4zm0 28a8 8 0 1 1 0-16 8 8 0 0 1 0 16z"/>`,
};

export function icon(name, label = '') {
  const body = PATHS[name] || PATHS.bell;
  const a11y = label ? `role="img" aria-label="${label.replace(/"/g, '&quot;')}"` : 'aria-hidden="true"';
  return `<svg viewBox="0 0 64 64" ${a11y} focusable="false">${body}</svg>`;
}

export const ICON_NAMES = Object.keys(PATHS);
