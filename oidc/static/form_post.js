// Submit the OAuth 2.0 form_post response to the portal as soon as the page loads.
// (A visible button does the same for browsers without JavaScript.)
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("form-post");
  if (form) { form.submit(); }
});
