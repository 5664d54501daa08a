package ai.edgevariator.demo

import android.content.Context
import android.graphics.Typeface
import android.text.InputType
import android.view.View
import android.view.ViewGroup.LayoutParams.MATCH_PARENT
import android.view.ViewGroup.LayoutParams.WRAP_CONTENT
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView

// Plain framework views built in code: two small screens need no layout files or AndroidX.

fun Context.screen(vararg children: View): View {
    val padding = (16 * resources.displayMetrics.density).toInt()
    val column = LinearLayout(this).apply {
        orientation = LinearLayout.VERTICAL
        setPadding(padding, padding, padding, padding)
    }
    for (child in children) column.addView(child, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
    return ScrollView(this).apply {
        fitsSystemWindows = true  // edge-to-edge on Android 15: keep clear of the status and navigation bars
        addView(column)
    }
}

fun Context.label(text: String = "", monospace: Boolean = false): TextView = TextView(this).apply {
    this.text = text
    textSize = 14f
    setTextIsSelectable(true)
    if (monospace) typeface = Typeface.MONOSPACE
}

fun Context.field(hint: String, text: String = "", inputType: Int = InputType.TYPE_CLASS_TEXT, lines: Int = 1): EditText =
    EditText(this).apply {
        this.hint = hint
        setText(text)
        this.inputType = inputType
        minLines = lines
    }

fun Context.button(text: String, onClick: () -> Unit): Button = Button(this).apply {
    this.text = text
    setOnClickListener { onClick() }
}
