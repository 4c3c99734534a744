// HTML escaping, shared by the chat templates' `escape` filter and the run report.
#pragma once

#include <string>

namespace speculators::text {

// & < > " ' as entities (&amp; &lt; &gt; &#34; &#39;), the characters markupsafe escapes.
std::string html_escape(const std::string& s);

}  // namespace speculators::text
