// Runs only when page scripts are allowed: the JavaScript-off session must leave "off" alone.
document.getElementById('js-status').textContent = 'on';
